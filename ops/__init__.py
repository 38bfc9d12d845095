"""Operations tooling production runs (not the runtime kernel): the `trellis` command."""
