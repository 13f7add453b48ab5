"""eegmusic: replay package."""
