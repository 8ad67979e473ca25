"""Media: the H.264 video writer and the sample clips of a trial rendered for the dashboard.

The encoder's settings live here, importable without PyAV (the CLI's choices).
"""

#: libx264's speed/size presets, fastest first (a slower one gives a smaller file at the same crf).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

#: The preset of `vidcolor colorize`'s output: on a 720p film (cockatoo.mp4 at crf 18) veryfast
#: encoded 2.2x as fast as medium for a 5% larger file and 0.4 dB less PSNR (42.2 dB); medium's
#: encode alone was slower than the model on a 2-core CPU.
ENCODER_PRESET = "veryfast"
