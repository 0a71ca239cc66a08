from qzpay.relay.cli import main

main()
