print("starling-load: not built yet")
