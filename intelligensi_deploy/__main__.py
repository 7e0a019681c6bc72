from intelligensi_deploy.cli import main

main()
