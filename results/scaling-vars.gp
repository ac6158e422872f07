workloads = "remote-batch segment-churn larson prodcons"
nworkloads = 4
nallocs = 5
colors = "#808080 #1b9e77 #377eb8 #ff7f00 #e41a1c"
y_min = 0.0354009
y_max = 31.2068
