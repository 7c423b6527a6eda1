from medgov_review.main import main

main()
