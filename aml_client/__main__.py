from aml_client.cli.app import main

main()
