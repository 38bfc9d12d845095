"""Read models several services keep from other services' events (they may import `contracts`)."""
