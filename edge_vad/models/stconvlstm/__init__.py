"""Tran & Hogg: ConvLSTM encoder–forecaster for frame-sequence prediction."""
