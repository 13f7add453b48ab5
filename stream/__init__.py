"""eegmusic: stream package."""
