"""Small helpers several adapter technologies share (codecs, key checks). Private."""
