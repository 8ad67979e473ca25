"""Media: the H.264 video writer and the sample clips of a trial rendered for the dashboard."""
