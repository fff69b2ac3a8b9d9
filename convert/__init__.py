"""Workstation side: full-int8 TFLite conversion, op and parity checks, and
the model bundle writer."""
