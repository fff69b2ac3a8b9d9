"""Workstation side: datasets cut by the device chain, the Keras LSTM
autoencoder, training and threshold calibration."""
