"""Task plugins (preprocess -> run -> decode -> logic) and their pure numpy decoders."""
