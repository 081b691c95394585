from django.urls import path

from gateways import views

app_name = "gateways"

urlpatterns = [
    path("gateways/", views.gateway_list, name="list"),
]
