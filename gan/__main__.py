from gan.commands.main import main

main()
