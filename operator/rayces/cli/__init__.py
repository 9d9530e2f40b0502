"""`raycesctl`: a thin command-line shell over the migrations and domain layers."""
