"""The units and names every room shares: frame rate, sample rate, emotions, style labels, phones.

Models carry their own copies in their manifests (a checkpoint may differ); these are the
defaults the corpus is built with and the fallbacks the add-on shows before a model loads.
"""
FPS = 25.0            # motion frames per second
SAMPLE_RATE = 16000   # audio samples per second, everywhere inside the core
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt")
# a speaker's speaking-style labels, in the order of the corpus's style arrays
STYLE_FIELDS = ("articulation", "asymmetry", "smile_bias", "brow_activity", "blink_rate", "head_amount",
                "head_rhythm", "tempo")
# the phone alphabet (ARPAbet, lower case, "sil" for pauses) of the corpus's timings, the aligner
# and the per-frame phone track; a track's index is the position here, len(PHONES) = unknown
PHONES = ("sil aa ae ah ao aw ay eh er ey ih iy ow oy uh uw ax "
          "p b m f v th dh t d n l s z sh zh ch jh k g ng hh r w y").split()
