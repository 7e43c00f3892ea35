// ECharts, only the parts the console uses (bars, pies, gauges, the metrics lines, the
// network topology graph); imported lazily by the pages that draw, so the first load does
// not carry it.
import * as echarts from 'echarts/core'
import { BarChart, PieChart, GaugeChart, LineChart, GraphChart } from 'echarts/charts'
import { GridComponent, TooltipComponent, LegendComponent, TitleComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([BarChart, PieChart, GaugeChart, LineChart, GraphChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent, CanvasRenderer])

export default echarts
