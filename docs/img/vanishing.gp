# gnuplot script written by spool-vanishing; run it in its own folder: gnuplot vanishing.gp
set terminal svg size 760,440 dynamic noenhanced font 'sans,12'
set datafile separator tab
set key outside right
set grid
set output 'vanishing_grad.svg'
set title 'norm of dL/dh<t> over one batch at initialisation (gap T = 100)'
set xlabel 'time step t (loss at the last step)'
set ylabel 'norm of dL/dh<t>'
set logscale y
set format y '%.0e'
set autoscale xfix
plot for [c=2:*] 'vanishing_grad.tsv' using 1:c with lines lw 2 title columnheader(c)
set output 'vanishing_grad_trained.svg'
set title 'norm of dL/dh<t> after training (gap T = 100)'
plot for [c=2:*] 'vanishing_grad_trained.tsv' using 1:c with lines lw 2 title columnheader(c)
unset logscale y
set format y '%g'
set autoscale xfixmin
set logscale x
set output 'vanishing_accuracy.svg'
set title 'held-out accuracy of recalling the first symbol after T distractors'
set xlabel 'gap T'
set ylabel 'accuracy'
set yrange [0:1.05]
plot for [c=2:*] 'vanishing_accuracy.tsv' using 1:c with linespoints lw 2 pt 2*c+1 ps 1.3 title columnheader(c), 'vanishing_accuracy.tsv' using 1:(0.125) with lines dt 2 lc rgb 'gray' title 'chance'
unset logscale x
set yrange [*:*]
set logscale y
set format y '%.0e'
set output 'vanishing_explode.svg'
set title 'vanilla RNN, W_hh = 2 x orthogonal, SGD: gradient norm before clipping'
set xlabel 'update'
set ylabel 'global gradient norm'
plot 'vanishing_explode.tsv' using 1:2 with lines lw 2 title 'no clipping', 'vanishing_explode.tsv' using 1:4 with lines lw 2 title 'clipped at norm 1'
set output 'vanishing_explode_loss.svg'
set title 'the same runs: training loss'
set ylabel 'loss'
plot 'vanishing_explode.tsv' using 1:3 with lines lw 2 title 'no clipping', 'vanishing_explode.tsv' using 1:5 with lines lw 2 title 'clipped at norm 1'
