from medgov_consent.main import main

main()
