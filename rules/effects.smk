# Effects of a sweep's settings on test accuracy (mnist3d.results.effects).
