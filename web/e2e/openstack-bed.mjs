// The real OpenStack test bed (`cargo xtask openstack up`), seen from the end-to-end
// tests as a provider's own administrator would see it: a Keystone token and Nova's API,
// to make a server directly in the provider cloud, behind zhengyun's back.

const env = (k) => {
  const v = process.env[k]
  if (!v) throw new Error(`${k} is not set: load target/openstack-bed/env`)
  return v
}

/** Signs in to Keystone with the bed's admin, scoped to its test project. */
export async function bedSession() {
  const authUrl = env('ZY_OPENSTACK_AUTH_URL')
  const username = env('ZY_OPENSTACK_USERNAME')
  const password = env('ZY_OPENSTACK_PASSWORD')
  const project = process.env.ZY_OPENSTACK_TEST_PROJECT ?? 'zhengyun'
  const r = await fetch(`${authUrl}/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: username, domain: { name: 'Default' }, password } } },
      scope: { project: { name: project, domain: { name: 'Default' } } },
    } }),
  })
  if (!r.ok) throw new Error(`Keystone refused the bed's admin: ${r.status} ${await r.text()}`)
  const token = r.headers.get('x-subject-token')
  const body = await r.json()
  const endpoint = (type) => body.token.catalog.find((s) => s.type === type)
    .endpoints.find((e) => e.interface === 'public').url.replace(/\/$/, '')
  const compute = endpoint('compute')
  const image = endpoint('image')
  const call = async (url, init = {}) => {
    const res = await fetch(url, { ...init, headers: { 'x-auth-token': token, 'content-type': 'application/json', ...(init.headers ?? {}) } })
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`)
    return res.status === 204 ? null : res.json()
  }
  return {
    authUrl, username, password, project, projectId: body.token.project.id,
    /** Creates a server directly in Nova and waits until it is ACTIVE; returns its id. */
    async createServer(name) {
      const flavors = await call(`${compute}/flavors`)
      const flavorRef = flavors.flavors.find((f) => f.name === 'm1.tiny').id
      const images = await call(`${image}/v2/images`)
      const imageRef = images.images[0].id
      const made = await call(`${compute}/servers`, {
        method: 'POST',
        headers: { 'openstack-api-version': 'compute 2.79' },
        body: JSON.stringify({ server: { name, flavorRef, imageRef, networks: 'none' } }),
      })
      const id = made.server.id
      const deadline = Date.now() + 120000
      for (;;) {
        const s = (await call(`${compute}/servers/${id}`)).server
        if (s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state']) return id
        if (s.status === 'ERROR') throw new Error(`the bed could not build ${name}: ${JSON.stringify(s.fault)}`)
        if (Date.now() > deadline) throw new Error(`${name} is still ${s.status} after 2 minutes`)
        await new Promise((ok) => setTimeout(ok, 1000))
      }
    },
    /** Nova's view of one server (null once it is gone). */
    async server(id) {
      const res = await fetch(`${compute}/servers/${id}`, { headers: { 'x-auth-token': token } })
      if (res.status === 404) return null
      if (!res.ok) throw new Error(`GET server ${id}: ${res.status}`)
      return (await res.json()).server
    },
  }
}
