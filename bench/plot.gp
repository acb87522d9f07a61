# plot.gp: bench/run's plot: requests/s against connections, spypixel and nginx, and the index rate.
# SPDX-License-Identifier: MIT
#
# gnuplot -e "datafile='F.dat'; out='F.svg'; idx_sqlite=N; idx_pg=N; subtitle='...'" bench/plot.gp
# The data file has one line per connection count: the count, then requests/s of nginx,
# spypixel (SQLite) and spypixel (PostgreSQL) in keep-alive, then the same with
# `Connection: close`, then the six again as CPU microseconds per answer (NaN where a
# server was not run). idx_sqlite and idx_pg are the
# stores' index rates (opens indexed per second by a server with nothing else to do; NaN
# when not measured), drawn across both panels: a server sustains the lower of its answer
# rate and its index rate.

if (!exists("subtitle")) subtitle = ""
set terminal svg size 1100,900 dynamic enhanced font "sans,12" background rgb "white"
set output out
set datafile missing "NaN"
set logscale x 2
set xlabel "wrk connections"
set ylabel "requests/s"
set yrange [0:*]
set format y "%.0f"
set grid ytics lc rgb "#dddddd"
set bmargin 3.5
set style line 1 lc rgb "#555555" lw 2 pt 7 ps 0.8
set style line 2 lc rgb "#d62728" lw 2 pt 5 ps 0.8
set style line 3 lc rgb "#1f77b4" lw 2 pt 9 ps 0.9
set style line 4 lc rgb "#d62728" lw 1.5 dt 2
set style line 5 lc rgb "#1f77b4" lw 1.5 dt 2

stats datafile using 1 nooutput
set xrange [STATS_min / 1.4 : STATS_max * 1.4]
set xtics (10, 25, 50, 100, 200, 400)

idx = ""
if (idx_sqlite == idx_sqlite) idx = idx . sprintf(", %g ls 4 title 'spypixel index rate, SQLite'", idx_sqlite)
if (idx_pg == idx_pg) idx = idx . sprintf(", %g ls 5 title 'spypixel index rate, PostgreSQL'", idx_pg)

set multiplot layout 2,2 title "Pixel answers: spypixel against nginx empty\\_gif (wrk -t1, one core each)\n{/*0.8 ".subtitle."}"
lines(c, extra) = sprintf("plot datafile using 1:%d with linespoints ls 1 title 'nginx empty\\_gif', " . \
     "'' using 1:%d with linespoints ls 2 title 'spypixel (SQLite)', " . \
     "'' using 1:%d with linespoints ls 3 title 'spypixel (PostgreSQL)'%s", c, c + 1, c + 2, extra)
set title "keep-alive: requests/s"
unset key
eval lines(2, idx)
set title "Connection: close: requests/s"
# One key for both panels, under them.
set key at screen 0.5, screen 0.01 center bottom vertical maxrows 3 samplen 2.5
eval lines(5, idx)
unset key
set ylabel "CPU us per answer"
set bmargin 8
set format y "%g"
set title "keep-alive: the server's CPU per answer (spypixel's writer apart)"
eval lines(8, "")
set title "Connection: close: the server's CPU per answer"
eval lines(11, "")
unset multiplot
