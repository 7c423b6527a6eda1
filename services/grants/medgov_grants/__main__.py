from medgov_grants.main import main

main()
