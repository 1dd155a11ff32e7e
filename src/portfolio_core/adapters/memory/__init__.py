"""In-process reference adapters: the executable specification of each port."""
