"""Classify images with a trained run (same as the ``minicnn-predict`` command):

    python examples/predict.py --run runs/default-seed0 cat.jpg plane.png
"""
from minicnn.predict import main

if __name__ == "__main__":
    main()
