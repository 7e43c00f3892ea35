"""zhengyun's test-bed ML2 mechanism driver.

The test bed runs Neutron without any agent, so no stock mechanism driver binds a port
and Nova fails every build with PortBindingFailed. This driver binds every port on the
first segment offered, as an OVS port, and marks it ACTIVE. It is for the test bed only:
nothing is plugged anywhere.
"""

from neutron_lib.plugins.ml2 import api


class ZyBind(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return "l2"

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                "ovs",
                {"port_filter": True, "ovs_hybrid_plug": False},
                status="ACTIVE",
            )
            return
