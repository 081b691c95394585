"""How a gateway is named in other resources' representations."""

from rest_framework import serializers


class GatewayRefSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
