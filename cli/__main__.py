from cli.appreg import main

main()
