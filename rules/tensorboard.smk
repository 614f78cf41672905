# TensorBoard event files of every run (mnist3d.results.tensorboard).
