// Types and reads shared by the network pages (私有网络, 安全组, 弹性IP, 负载均衡, 拓扑).
import { all, get, type Instance, type Schemas } from '../../api/client'

export type Vpc = Schemas['Vpc']
export type VpcDetail = Schemas['VpcDetail']
export type Subnet = Schemas['Subnet']
export type Nic = Schemas['Nic']
export type SecurityGroup = Schemas['SecurityGroup']
export type SecurityRule = Schemas['SecurityRule']
export type ElasticIp = Schemas['ElasticIp']
export type ExternalNetwork = Schemas['ExternalNetwork']
export type LoadBalancer = Schemas['LoadBalancer']
export type LbListener = Schemas['LbListener']
export type LbMember = Schemas['LbMember']

/** A project's VPCs (with its department's shared ones), each with its subnets. */
export async function vpcDetails(projectId?: string): Promise<VpcDetail[]> {
  const vpcs = await get<Vpc[]>('/v1/vpcs', projectId ? { project_id: projectId } : {})
  return Promise.all(vpcs.map((v) => get<VpcDetail>(`/v1/vpcs/${v.id}`)))
}

/** A project's instances with their NICs. */
export async function instancesWithNics(projectId: string): Promise<{ instance: Instance; nics: Nic[] }[]> {
  const list = (await all<Instance>('/v1/instances', { project_id: projectId }, 500)).filter((i) => i.state !== 'deleted')
  return Promise.all(list.map(async (instance) => ({ instance, nics: await get<Nic[]>(`/v1/instances/${instance.id}/nics`).catch(() => []) })))
}
