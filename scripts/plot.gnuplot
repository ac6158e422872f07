# plot.gnuplot - the plots of scripts/bench.sh, drawn from the data files
# tests/bench/report.py writes next to bench.md:
#   time.png    wall time per workload, ratio to jemalloc, per allocator
#   rss.png     peak RSS per workload, ratio to jemalloc, per allocator
#   phases.png  RSS over time of the phases workload (first repetition)
# Run from the results directory: gnuplot -e "outdir='DIR'" scripts/plot.gnuplot
if (!exists("outdir")) outdir = "."
load outdir."/plot-vars.gp"

set terminal pngcairo size 1400,600 noenhanced font "sans,10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key below horizontal
set grid ytics
set xtics rotate by -30 scale 0
set logscale y 2
set yrange [0.125:16]
set ytics ("1/8" 0.125, "1/4" 0.25, "1/2" 0.5, "1" 1, "2" 2, "4" 4, "8" 8, "16" 16)

set output outdir."/time.png"
set title "Wall time per workload, ratio to jemalloc (median of the repetitions; lower is better)"
set ylabel "× jemalloc"
plot for [i=2:nallocs+1] outdir."/plot-time.dat" using i:xtic(1) title columnheader(i), \
     1 with lines lc rgb "black" dt 2 notitle

set output outdir."/rss.png"
set title "Peak RSS per workload, ratio to jemalloc (median; lower is better)"
plot for [i=2:nallocs+1] outdir."/plot-rss.dat" using i:xtic(1) title columnheader(i), \
     1 with lines lc rgb "black" dt 2 notitle

if (strlen(phase_allocs) > 0) {
    reset
    set terminal pngcairo size 1200,600 noenhanced font "sans,10"
    set output outdir."/phases.png"
    set datafile separator ","
    set title "phases: grow to 1 GiB, free 90% keeping the oldest 10%, idle, grow again, free all"
    set xlabel "seconds"
    set ylabel "RSS (MiB)"
    set grid
    set key top right
    plot for [a in phase_allocs] outdir."/phases/".a."-rep1.csv" skip 1 using ($1/1000):($2/1024) \
         with lines lw 2 title a
}
