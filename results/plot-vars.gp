allocs = "glibc jemalloc mimalloc tcmalloc segshim segshim-nohuge"
nallocs = 6
phase_allocs = "glibc jemalloc mimalloc tcmalloc segshim segshim-nohuge"
