import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

// Element Plus components are imported on demand (only what the templates use); their
// styles come from one stylesheet imported in main.ts. ECharts and every page are
// dynamic imports, so the first load carries only the shell and the login page.
export default defineConfig({
  plugins: [
    vue(),
    Components({ resolvers: [ElementPlusResolver({ importStyle: false })], dts: false }),
  ],
  build: {
    target: 'es2020',
    chunkSizeWarningLimit: 1200,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/v1': 'http://127.0.0.1:8080',
    },
  },
})
