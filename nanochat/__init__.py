"""nanochat: a from-scratch, readable ChatGPT clone. See README.md for the map of modules."""
