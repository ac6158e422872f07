# plot.gnuplot - the plots of scripts/bench.py, drawn from the data files it
# writes next to bench.md (plot-vars.gp, plot-time.dat, plot-rss.dat,
# phases/*.csv, phases/marks.dat):
#   time.png    wall seconds per workload and allocator
#   rss.png     peak RSS (MiB) per workload and allocator
#   phases.png  RSS over time of the phases workload (first repetition),
#               each phase's start marked on every curve
# Bars are medians, whiskers min-max over the repetitions, on a log axis whose
# range bench.py sets just around the data (plot-vars.gp).
#   gnuplot -e "outdir='DIR'" scripts/plot.gnuplot
if (!exists("outdir")) outdir = "."
load outdir."/plot-vars.gp"

set terminal pngcairo size 1800,700 noenhanced font "sans,10"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key below horizontal
set grid ytics mytics
set xtics rotate by -35 scale 0
set logscale y 10
set format y "%g"
set bmargin 8

set output outdir."/time.png"
set title "Wall time per workload (median, whiskers min-max; lower is better)"
set ylabel "seconds (log scale)"
set yrange [time_min:time_max]
plot for [i=0:nallocs-1] outdir."/plot-time.dat" \
     using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) lc rgb word(colors, i+1) title word(allocs, i+1)

set output outdir."/rss.png"
set title "Peak RSS per workload (median, whiskers min-max; lower is better)"
set ylabel "MiB (log scale)"
set yrange [rss_min:rss_max]
plot for [i=0:nallocs-1] outdir."/plot-rss.dat" \
     using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) lc rgb word(colors, i+1) title word(allocs, i+1)

if (strlen(phase_allocs) > 0) {
    reset
    set terminal pngcairo size 1400,650 noenhanced font "sans,10"
    set output outdir."/phases.png"
    set title "phases: 1 grow (small blocks), 2 free 90% (keeping the oldest 10%), 3 idle, 4 grow again, 5 free all\n(the start of each phase marked on every curve)"
    set xlabel "seconds"
    set ylabel "RSS (MiB)"
    set grid
    set key top right
    set datafile separator ","
    plot for [i=1:words(phase_allocs)] outdir."/phases/".word(phase_allocs, i)."-rep1.csv" skip 1 \
         using ($1/1000):($2/1024) with lines lw 2 lc rgb word(phase_colors, i) title word(phase_allocs, i), \
         for [i=1:words(phase_allocs)] outdir."/phases/marks.dat" index (i-1) \
         using 1:2:3 with labels point pt 7 ps 1 lc rgb word(phase_colors, i) offset 0.6,0.6 left notitle
}
