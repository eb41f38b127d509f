include $(sort $(wildcard $(BR2_EXTERNAL_TCR_PATH)/package/*/*.mk))
