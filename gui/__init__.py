"""eegmusic: gui package."""
