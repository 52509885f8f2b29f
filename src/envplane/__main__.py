from envplane.cli.main import main

main()
