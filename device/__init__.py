"""Everything that runs on the Raspberry Pi: the signal chain, scorer, alerts,
sinks and the runtime loop. Never imports TensorFlow or the training code."""
