"""Train, adapt, unlearn or extrapolate StyleGAN2 networks; run `python train.py --help`."""
from stylegan_unlearn.commands.train import train_command

if __name__ == "__main__":
    train_command()
