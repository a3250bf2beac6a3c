/* api_deliveries: not written yet */
