# plot-scaling.gnuplot - scaling.png of scripts/bench.py --scaling: one
# panel per workload, throughput (million malloc+free pairs per second, log
# scale) against the thread count (log 2), one line per allocator.
#   gnuplot -e "outdir='DIR'" scripts/plot-scaling.gnuplot
if (!exists("outdir")) outdir = "."
load outdir."/scaling-vars.gp"

cols = nworkloads < 2 ? 1 : 2
rows = (nworkloads + cols - 1) / cols
set terminal pngcairo size 750*cols,480*rows noenhanced font "sans,10"
set output outdir."/scaling.png"
set multiplot layout rows,cols title "Throughput by thread count (median; higher is better)"
set logscale x 2
set logscale y 10
set format y "%g"
set yrange [y_min:y_max]
set grid xtics ytics mytics
set xlabel "threads"
set ylabel "Mops/s (log scale)"
set key below
do for [w=1:nworkloads] {
    set title word(workloads, w)
    plot for [i=2:nallocs+1] outdir."/scaling.dat" index (w-1) using 1:i with linespoints lw 2 lc rgb word(colors, i-1) title columnheader(i)
}
unset multiplot
