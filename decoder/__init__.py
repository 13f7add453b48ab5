"""eegmusic: decoder package."""
