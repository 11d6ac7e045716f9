"""Offline work: training, augmentation, synthetic strokes, calibration, retraining, exporting reviewed drawings.

Nothing here runs in the web process or a worker; TensorFlow is imported only by the modules that train.
"""
