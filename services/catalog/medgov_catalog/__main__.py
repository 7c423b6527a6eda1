from medgov_catalog.main import main

main()
