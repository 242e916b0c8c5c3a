"""djarchive-admin: write manifests, upload, publish and retract revisions of the DataJoint archive."""

__version__ = "0.1.0"
