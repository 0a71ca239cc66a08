from qzpay.cli import main

main()
