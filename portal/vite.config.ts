import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the API to a running `make run` stack (gateway on 8000).
const gateway = process.env.TRELLIS_GATEWAY_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 900 },
  server: {
    proxy: {
      "/graphql": { target: gateway, ws: true },
      "/auth": gateway,
      "/dev": gateway,
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
