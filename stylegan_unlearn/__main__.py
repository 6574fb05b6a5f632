from stylegan_unlearn.cli import main

main()
