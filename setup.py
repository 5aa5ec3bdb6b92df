from setuptools import find_packages, setup

setup(
    name="minicnn",
    version="0.1.0",
    description="A CNN library in NumPy with hand-written backprop and numba kernels, for CIFAR-10",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["minicnn", "minicnn.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        "scikit-learn>=1.2",
        "matplotlib>=3.6",
        "tqdm>=4.60",
        "pillow>=9",
        "threadpoolctl>=3",
    ],
    extras_require={"test": ["pytest>=7", "scipy>=1.9", "playwright>=1.40", "hypothesis>=6"],
                    # MPI from the registry: mpi4py and the MPICH library as wheels
                    "distributed": ["mpi4py>=4", "mpich"]},
    entry_points={"console_scripts": ["minicnn-predict=minicnn.predict:cli",
                                      "minicnn-report=minicnn.report:main"]},
)
