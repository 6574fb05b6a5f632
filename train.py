"""Train, adapt, unlearn or extrapolate StyleGAN2 networks; run `python train.py --help`."""
from stylegan_unlearn.train_cli import train_command

if __name__ == "__main__":
    train_command()
