/* mock: not written yet */
