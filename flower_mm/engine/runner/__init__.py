from .amp_loops import AmpTestLoop, AmpValLoop

__all__ = ['AmpTestLoop', 'AmpValLoop']
